"""What the search backend uses: the gRPC client library, a CLI, the demo and the locust load test."""
