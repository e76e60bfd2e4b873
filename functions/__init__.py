"""Lambda function code (the ``functions/`` code asset); each folder is one use case."""
