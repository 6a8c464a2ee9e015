"""NVIDIA GPUs (Hopper, Blackwell): SPDM 1.1 GET_MEASUREMENTS evidence signed by the device identity key.

abi: exact parse of request, response, measurement blocks and opaque data; verify: chain to the pinned NVIDIA
Device Identity CA, SPDM signature, nonce; appraise: NvidiaReference (pinned measurement indices); compose:
binding GPU evidence to the confidential VM's report_data.
"""
