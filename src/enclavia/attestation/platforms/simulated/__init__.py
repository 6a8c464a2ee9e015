"""Simulated TEE evidence: a software platform key signs the measurement and report_data.

Dev only. It proves the plumbing, not isolation: whoever holds the platform key file can forge it.
"""
