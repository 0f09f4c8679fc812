"""The MiniMind model and everything that uses one: loading, generating, chatting, adapters, export.

    model_minimind.py   MiniMindConfig, MiniMindForCausalLM, MiniMindForSequenceClassification (the reward
                        model's class; self-contained: it travels with exports)
    loading.py          a model from a checkpoint name, a .pth, a transformers folder, a LoRA on top
    generation.py       streamed and batched generation (ids, masks, log-probs, stop strings)
    chat.py             prompts, history and answers of a conversation (eval_model.py, page, demo)
    reasoning.py        the chat template's parsing: <think>/<answer>
    tools.py            tool calling: the tool set, safe execution, <tool_call> parsing
    agent.py            the tool loop (calls run, results fed back, a turn limit), shared by every front end
    reward.py           reward models: the head on a trunk, .pth files, scoring conversations
    lora.py             LoRA adapters (peft) in MiniMind2's file format: apply, merge, list
    export.py           transformers (MiniMind / Llama), .pth, PEFT and GGUF outputs
    tokenizer*.json     the tokenizer

Importing this package registers MiniMind with transformers' Auto* classes.
"""

from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

from .model_minimind import MiniMindConfig, MiniMindForCausalLM, MiniMindForSequenceClassification

AutoConfig.register(MiniMindConfig.model_type, MiniMindConfig, exist_ok=True)
AutoModelForCausalLM.register(MiniMindConfig, MiniMindForCausalLM, exist_ok=True)
AutoModelForSequenceClassification.register(MiniMindConfig, MiniMindForSequenceClassification, exist_ok=True)

__all__ = ["MiniMindConfig", "MiniMindForCausalLM", "MiniMindForSequenceClassification"]
