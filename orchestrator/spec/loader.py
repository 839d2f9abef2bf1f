"""Read a campaign file into a ``CampaignSpec``, or one line per problem.

Nothing here raises anything but ``SpecError``: a syntax error, a missing field or a
wrong value all become ``"<field path>: <what is wrong>; <how to fix it>"`` lines.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import ValidationError

from orchestrator.errors import SpecError
from orchestrator.spec.reading import MAX_DEPTH, MAX_FILE_BYTES, describe_error, one_line, parse_yaml_text
from orchestrator.spec.schema import CampaignSpec

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "load_spec", "parse_spec", "spec_hash"]


def spec_hash(yaml_text: str) -> str:
    """SHA-256 of the campaign text, as stored with the campaign."""
    return hashlib.sha256(yaml_text.encode()).hexdigest()


def load_spec(path: str | Path) -> tuple[CampaignSpec, str]:
    """Read and validate ``path``; returns the spec and the exact YAML text."""
    path = Path(path)
    source = one_line(str(path))  # a name with a line break must not break the one-line problems
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SpecError([f"file is larger than {MAX_FILE_BYTES // 1000} kB; a campaign file is a few kB"], source)
        with path.open(encoding="utf-8") as stream:  # bounded read: /dev/zero or a growing file cannot fill memory
            text = stream.read(MAX_FILE_BYTES + 1)
    except SpecError:
        raise
    except FileNotFoundError:
        raise SpecError(["file not found; check the path"], source) from None
    except (OSError, ValueError) as err:  # a folder, no permission, not UTF-8, a NUL in or too long a name...
        raise SpecError([f"cannot read the file ({type(err).__name__}); give a readable UTF-8 YAML file"], source) from None
    return parse_spec(text, source=source), text


def parse_spec(text: str, source: str = "campaign") -> CampaignSpec:
    """Validate campaign YAML ``text``; ``source`` names it in error lines."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:  # text from Campaign.from_text has no file to stat
        raise SpecError([f"text is larger than {MAX_FILE_BYTES // 1000} kB; a campaign file is a few kB"], source)
    data = parse_yaml_text(text, source)
    try:
        return CampaignSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError([one_line(line) for e in err.errors() for line in describe_error(e, data)], source) from None
