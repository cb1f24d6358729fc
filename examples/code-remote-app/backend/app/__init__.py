"""Code Remote API: a stdlib-only stand-in served by AWS Lambda or a plain HTTP container."""
