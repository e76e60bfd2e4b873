"""CI/CD for a Flywheel project: GitHub Actions workflows generated from plain parameters.

See :mod:`flywheel.cicd.github` and docs/adr/0066-github-actions-with-oidc-and-cdk-pipelines.md.
"""
