"""BYOM provisioning API: the AWS MLOps Workload Orchestrator's endpoints, served by Ancora."""
