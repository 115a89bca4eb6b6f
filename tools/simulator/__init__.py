"""A synthetic region that drives the public APIs like real providers and councils would.

`plan` generates a deterministic sequence of requests from a seed and a simulated clock, drawing
its settings, children and councils from the synthetic world (`tools.synthetic`); `sender` sends
them over HTTP with real tokens; `cli` is `nearhome simulate`.
"""
