"""MiniMind2 model; importing this package registers it with transformers' Auto* classes."""

from transformers import AutoConfig, AutoModelForCausalLM

from .model_minimind import MiniMindConfig, MiniMindForCausalLM

AutoConfig.register(MiniMindConfig.model_type, MiniMindConfig, exist_ok=True)
AutoModelForCausalLM.register(MiniMindConfig, MiniMindForCausalLM, exist_ok=True)

__all__ = ["MiniMindConfig", "MiniMindForCausalLM"]
