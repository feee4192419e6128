"""Training our bundled default model: dataset -> codec -> text tokenizer + LM -> Hugging Face folder.

Run the stages with ``python -m musicgen_cli.train --help``; each resumes from its own checkpoint.
"""
