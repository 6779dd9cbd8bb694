"""Settings of the stand-in issuer, from the environment (rendered by the idp_standin role)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from labdef import LabDefinition


class IdpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SECLAB_IDP_", extra="ignore")

    lab_file: Path = Field(default=Path("/etc/seclab/lab.json"), description='lab.json: {"lab": {...}}')
    state_dir: Path = Field(default=Path("/var/lib/seclab/idp"), description="credentials.json (0600)")
    keys_dir: Path | None = Field(default=None, description="signing keys; default <state_dir>/keys")
    issuer_base: str = Field(default="http://127.0.0.1:8180", description="Keycloak's hostname: iss = <base>/realms/<realm>")

    @property
    def key_directory(self) -> Path:
        return self.keys_dir or self.state_dir / "keys"

    @property
    def credentials_file(self) -> Path:
        return self.state_dir / "credentials.json"

    def load_lab(self) -> LabDefinition:
        """lab.json as rendered by `labdef.as_vars` (`{"lab": {...}}`), or a bare definition."""
        data = json.loads(self.lab_file.read_text(encoding="utf-8"))
        return LabDefinition.model_validate(data.get("lab", data))
