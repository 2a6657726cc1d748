"""Public endpoints, one module each: tracked links and Vonage webhooks."""
