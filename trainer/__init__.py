"""Shared training code for train_pretrain.py, train_full_sft.py and train_dpo.py.

Other tools import the small pieces they need:
    from trainer.errors import UserError, run_main
    from trainer.args import add_model_args, add_common_args, build_config, load_tokenizer
    from trainer.checkpoint import weight_path, load_weights, save_weights, atomic_save
"""
