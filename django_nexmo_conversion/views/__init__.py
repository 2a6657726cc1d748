"""Public endpoints, one module each: tracked links (``links``) and Vonage webhooks (``webhooks``)."""
