"""Data protection inside the enclave: classification, detection, redaction, tokenization, field encryption."""  # noqa: E501
