"""Typed configuration: dataclass schema, YAML defaults, presets, overrides, validation and API keys.

- `schema`: the dataclasses (`RolloutConfig` and its sections); each field carries its help text
  and its valid choices or bounds (`setting`);
- `load`: `load_config` merges the schema, the package's YAML defaults (rollout/defaults/),
  `--config` files, the sampling preset and `key=value` overrides (`parse_overrides`);
- `check`: `validate`, the values against the schema's choices and bounds (`field_problems`);
- `keys`: API key sources (`api_key_of`), redaction's list of keys, the refusal of literal
  keys Ray would record (`check_secrets`);
- `reference`: `python -m rollout.core.config.reference` prints the reference of every key
  (docs/config.md) from the schema and the YAML defaults.
"""

from rollout.core.config.check import field_problems, validate
from rollout.core.config.keys import (
    KeySource,
    api_key_of,
    check_key_sources,
    check_secrets,
    key_sections,
    secrets_of,
)
from rollout.core.config.load import (
    CONF_DIR,
    CONFIG_ENV_VARS,
    _load_yaml,
    check_keys,
    load_config,
    merged_config,
    overrides_to_dict,
    parse_overrides,
    sampling_presets,
    to_dict,
)
from rollout.core.config.schema import (
    ENV_BACKENDS,
    INVALID_TOOL_ARGS,
    KEY_FIELDS,
    SCRIPTED_POLICIES,
    AenvConfig,
    AgentLLMConfig,
    EndpointConfig,
    EnvConfig,
    EpisodeConfig,
    RolloutConfig,
    SamplingConfig,
    UserLLMConfig,
    choices_of,
    setting,
)
from rollout.core.failures import shown

__all__ = [
    "CONFIG_ENV_VARS",
    "CONF_DIR",
    "ENV_BACKENDS",
    "INVALID_TOOL_ARGS",
    "KEY_FIELDS",
    "SCRIPTED_POLICIES",
    "AenvConfig",
    "AgentLLMConfig",
    "EndpointConfig",
    "EnvConfig",
    "EpisodeConfig",
    "KeySource",
    "RolloutConfig",
    "SamplingConfig",
    "UserLLMConfig",
    "_load_yaml",
    "api_key_of",
    "check_key_sources",
    "check_keys",
    "check_secrets",
    "choices_of",
    "field_problems",
    "key_sections",
    "load_config",
    "merged_config",
    "overrides_to_dict",
    "parse_overrides",
    "sampling_presets",
    "secrets_of",
    "setting",
    "shown",
    "to_dict",
    "validate",
]
