"""Does a reference entry pin enough for production? (issue 13, point 5)

A reference that pins only firmware-level values accepts any kernel and any application on that firmware:

- TDX: MRTD is the TD firmware (TDVF). The entry must also pin MRCONFIGID (the config id the VMM sets at
  launch, where the deployment carries the enclave's manifest digest) or RTMR0-RTMR2 (firmware config,
  kernel and command line/initrd as measured at boot).
- SEV-SNP: MEASUREMENT covers the launch image, but without a TCB floor any old (vulnerable) firmware
  passes, and without a VMPL a report from a less privileged VMPL (under a paravisor) passes.
- Nitro: PCR0 (the enclave image), PCR1 (kernel and boot ramdisk) and PCR2 (the application) together.
- SEV-SNP and TDX: the launch-time config slot (SNP ``host_data``, TDX ``MRCONFIGID``) must be bound,
  either to the presented manifest (``bind_manifest: true``, attestation.config_binding) or to a pinned
  value (``host_data`` / ``mrconfigid``, e.g. the Confidential Containers init-data digest). Otherwise the
  host launches the measured image with any configuration it likes. An all-zero pin binds nothing.

Under ``profile: production`` such an entry is refused at policy load unless it says
``unsafe_weak_pins: true``; the gaps are then carried in every attestation result it affirms
(``reasons``: ``unsafe_weak_pins:<gap>,...``), so clients, tokens and auditors see the choice.
"""

from __future__ import annotations

from enclavia.attestation.appraisal import Reference
from enclavia.attestation.platforms.nitro.appraise import NitroReference
from enclavia.attestation.platforms.sevsnp.appraise import SevSnpReference
from enclavia.attestation.platforms.tdx.appraise import TdxReference

UNSAFE_FLAG = "unsafe_weak_pins"
REASON_PREFIX = "unsafe_weak_pins:"
_TDX_RUNTIME = ("RTMR0", "RTMR1", "RTMR2")


def weak_pins(ref: Reference) -> tuple[str, ...]:
    """Fixed names of what ``ref`` leaves open (empty: it pins enough)."""
    if isinstance(ref, TdxReference):
        config = ref.bind_manifest or any(ref.registers.get("MRCONFIGID", b""))
        runtime = all(r in ref.registers for r in _TDX_RUNTIME)
        gaps = [] if runtime or "MRCONFIGID" in ref.registers else ["tdx_mrtd_only"]
        return tuple(gaps) if config else (*gaps, "tdx_config_unbound")
    if isinstance(ref, SevSnpReference):
        gaps = [] if ref.min_tcb else ["snp_no_tcb_floor"]
        gaps += [] if ref.vmpl is not None else ["snp_no_vmpl"]
        bound = ref.bind_manifest or any(ref.host_data or b"")  # all zeros: the host set nothing
        return tuple(gaps) if bound else (*gaps, "snp_config_unbound")
    if isinstance(ref, NitroReference):
        return () if {0, 1, 2} <= set(ref.pcrs) else ("nitro_not_pcr0_2",)
    return ()


def unsafe_reason(gaps: tuple[str, ...]) -> str:
    return REASON_PREFIX + ",".join(gaps)
