"""An API image as every layer names it: a repository and a digest, never a mutable tag."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageRef:
    repository: str
    digest: str
    repository_uri: str
    size_bytes: int

    @property
    def uri(self) -> str:
        """The ECR image URI pinned by digest: what Lambda runs."""
        return f"{self.repository_uri}@{self.digest}"
