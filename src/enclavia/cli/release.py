"""`enclavia release ...` and `enclavia log ...`: the release authority's commands (thin wrappers).

Exit codes: 0 done / verified; 1 refused (with the error's stable code); 2 usage error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from enclavia.cli import paths
from enclavia.errors import EnclaviaError

EXIT_REJECTED = 1
EXIT_USAGE = 2

release_app = typer.Typer(no_args_is_help=True, help="Build, measure, sign and roll out enclave releases.")


def register(app: typer.Typer) -> None:
    app.add_typer(release_app, name="release")


def _usage(message: str) -> NoReturn:
    typer.echo(f"usage error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def _refused(err: EnclaviaError) -> NoReturn:
    typer.echo(f"REFUSED: {err.code}", err=True)
    raise typer.Exit(EXIT_REJECTED)


def _write_json(doc: Any, out: Path | None) -> None:
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")


# -- build and measure ---------------------------------------------------------------------------


@release_app.command("build")
def release_build(
    out: Annotated[Path | None, typer.Option(help="Write the build document here")] = None,
    source: Annotated[
        Path | None, typer.Option(help="The enclavia package directory to measure (default: installed)")
    ] = None,
    model_dir: Annotated[Path | None, typer.Option(help="Model directory the enclave will load")] = None,
    tee: Annotated[str, typer.Option(help="TEE the image is configured for")] = "simulated",
    tcb: Annotated[bool, typer.Option("--tcb", help="Print the trusted computing base report")] = False,
) -> None:
    """Compute the enclave image manifest and its digest (reproducible: contents only, sorted paths)."""
    import enclavia
    from enclavia.enclave.boot import EnclaveConfig, load_models, manifest_for
    from enclavia.release.build import Build, tcb_report

    root = (source or Path(enclavia.__file__).parent).resolve()
    if not (root / "__init__.py").is_file():
        _usage("--source must be an enclavia package directory")
    models_path = model_dir or paths.default_model_dir()
    try:
        models = load_models(models_path)
    except (OSError, ValueError) as err:
        _usage(f"cannot load models from {models_path}: {type(err).__name__}")
    except EnclaviaError as err:
        _refused(err)
    config = EnclaveConfig(model_dir=models_path, sim_dir=paths.sim_dir(), tee=tee)
    manifest = manifest_for(config, models, root)
    build = Build(manifest=manifest)
    if out is not None:
        _write_json(build.to_json(), out)
    if tcb:
        _write_json(tcb_report(manifest, root), None)
    else:
        typer.echo(f"manifest digest: {build.manifest_digest.hex()}")


@release_app.command("measure")
def release_measure(  # noqa: PLR0917 - typer maps every option to a parameter
    build_file: Annotated[Path, typer.Option("--build", help="Build document from `release build`")],
    tee: Annotated[str, typer.Option(help="simulated, sev-snp, nitro or tdx")],
    out: Annotated[
        Path | None, typer.Option(help="Where to write (default: update --build in place)")
    ] = None,
    ovmf: Annotated[Path | None, typer.Option(help="SEV-SNP: OVMF firmware")] = None,
    kernel: Annotated[Path | None, typer.Option(help="SEV-SNP: kernel")] = None,
    initrd: Annotated[Path | None, typer.Option(help="SEV-SNP: initrd")] = None,
    append: Annotated[str | None, typer.Option(help="SEV-SNP: kernel command line")] = None,
    vcpus: Annotated[int, typer.Option(help="SEV-SNP: vCPU count")] = 1,
    vcpu_type: Annotated[str | None, typer.Option(help="SEV-SNP: vCPU type, e.g. EPYC-Milan")] = None,
    vcpu_sig: Annotated[str | None, typer.Option(help="SEV-SNP: vCPU signature (int, 0x...)")] = None,
    guest_features: Annotated[str, typer.Option(help="SEV-SNP: guest features")] = "0x1",
    vmm_type: Annotated[str, typer.Option(help="SEV-SNP: QEMU, ec2 or gce")] = "QEMU",
    eif_json: Annotated[Path | None, typer.Option(help="Nitro: `nitro-cli describe-eif` output")] = None,
    mrtd: Annotated[str | None, typer.Option(help="TDX: MRTD hex")] = None,
    rtmr: Annotated[list[str] | None, typer.Option(help="TDX: RTMRi=hex (repeatable)")] = None,
) -> None:
    """Record the platform measurement of a build beside its manifest digest."""
    from enclavia.attestation.claims import Tee
    from enclavia.release import measure
    from enclavia.release.build import load_build

    try:
        tee_kind = Tee(tee)
        build = load_build(build_file)
        if tee_kind is Tee.SIMULATED:
            values, inputs = measure.measure_simulated(build.manifest_digest)
        elif tee_kind is Tee.SEV_SNP:
            if ovmf is None:
                _usage("--ovmf is required for sev-snp")
            values, inputs = measure.measure_sev_snp(
                ovmf=ovmf,
                vcpus=vcpus,
                vcpu_type=vcpu_type,
                vcpu_sig=int(vcpu_sig, 0) if vcpu_sig else None,
                kernel=kernel,
                initrd=initrd,
                append=append,
                guest_features=int(guest_features, 0),
                vmm_type=vmm_type,
            )
        elif tee_kind is Tee.NITRO:
            if eif_json is None:
                _usage("--eif-json is required for nitro")
            values, inputs = measure.measure_nitro(eif_json.read_bytes())
        elif tee_kind is Tee.TDX:
            if mrtd is None:
                _usage("--mrtd is required for tdx")
            regs = {"mrtd": mrtd}
            for item in rtmr or []:
                name, _, value = item.partition("=")
                regs[name.strip().lower()] = value.strip()
            values, inputs = measure.measure_tdx(regs)
        else:
            _usage("no release measurement for this TEE")
    except EnclaviaError as err:
        _refused(err)
    except (ValueError, OSError) as err:
        _usage(str(err) if isinstance(err, ValueError) else f"cannot read an input: {type(err).__name__}")
    updated = build.with_measurement(tee_kind, values, inputs)
    _write_json(updated.to_json(), out or build_file)
    typer.echo(f"{tee_kind}: {json.dumps(values, sort_keys=True)}", err=True)
