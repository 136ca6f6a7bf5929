"""AI-generation forensics for ``consentry scan``: what generators leave on a device.

* :mod:`.models` — model files found by structure (safetensors, GGUF, pickle/zip checkpoints,
  ONNX), streamed hashes (SHA-256, AutoV2, AUTOMATIC1111's legacy hash, the LoRA "addnet"
  hash), safetensors metadata and an architecture guess;
* :mod:`.artefacts` — generator files (ComfyUI workflows and history, A1111 ``params.txt`` /
  ``styles.csv`` / ``ui-config.json`` / ``config.json``, InvokeAI's SQLite database, Fooocus
  logs, diffusers ``model_index.json``) and the generations they record;
* :mod:`.links` — images ↔ models: which model file each generated image names;
* :mod:`.sessions` — images grouped into generation sessions, with a timeline;
* :mod:`.prompts` — the operator's term list and prompt redaction for reports.

Nothing here loads a model or unpickles anything: headers are parsed, pickles are walked
opcode by opcode with :mod:`pickletools`, and every read is bounded.
"""
