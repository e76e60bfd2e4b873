"""``POST /v1/approvals/{id}``: approve or reject a candidate waiting in the training workflow."""
