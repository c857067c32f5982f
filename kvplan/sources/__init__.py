"""Where inputs come from: model configs (files, folders, the built-in catalog, the Hugging Face Hub) and
hardware profiles. Never imports torch or transformers.
"""
