"""Running the pipeline as a shared service: the team instance profile's processes, its run queue, and a
throwaway Postgres for tests and benchmarks (deploy/README.md)."""
