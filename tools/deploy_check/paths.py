"""Where the deployment files are, in the repository."""

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
DEPLOY = REPOSITORY / "deploy"
CHART = DEPLOY / "helm" / "nearhome"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
REQUIREMENTS = DEPLOY / "check-requirements.txt"
SCHEMAS = DEPLOY / "schemas"
CHECKOV_CONFIG = DEPLOY / ".checkov.yaml"
HELPER = Path(__file__).with_name("helper.py")
