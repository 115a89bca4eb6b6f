"""Deployment helpers: `topics` writes the Helm chart's topic list (deploy/helm/nearhome/files/
topics.yaml) from the topic catalogue, so that the chart's KafkaTopics never drift from it."""
