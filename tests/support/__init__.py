"""Helpers shared by the tests: OpenAPI validation, fakes of Slack, request signing."""
