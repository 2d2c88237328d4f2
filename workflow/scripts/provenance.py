"""Snakemake adapter: provenance.json and provenance_times.json; logic in tmeflow.provenance."""

from pathlib import Path

from tmeflow import provenance, runtime


def main(smk) -> None:
    log = runtime.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    record = provenance.build_provenance(
        config=p.config,
        inputs=list(smk.input.matrices),
        repo_dir=Path(provenance.__file__).resolve().parents[3],  # the workflow checkout
        packages=p.packages,
        fallbacks={"hvg": provenance.hvg_fallbacks(smk.input.hvg)},
    )
    provenance.write_json(record, smk.output.record)
    log.info(
        "provenance: workflow %s, %d input file(s) hashed, seeds %s",
        record["workflow"]["version"], len(record["inputs"]), record["seeds"],
    )  # fmt: skip
    # Times of every job whose output is present under results/ (not byte-compared).
    present = provenance.present_outputs(Path(smk.output.record).parent, skip=smk.output)
    provenance.write_json(provenance.run_times(present), smk.output.times)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
