"""Intel TDX: DCAP quotes v4/v5 (TD report 1.0 / 1.5) verified with dcap-qvl against Intel collateral.

abi: exact parse of header, body and signature data; verify: numbered checks and TCB status table;
appraise: TdxReference (MRTD required, RTMRs and others optional, accepted TCB statuses).
"""
