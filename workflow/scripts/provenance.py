"""Snakemake adapter: core.json and provenance_times.json; logic in tmeflow.core."""

from pathlib import Path

from tmeflow import core


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    record = core.build_provenance(
        config=p.config,
        inputs=list(smk.input.matrices),
        repo_dir=Path(core.__file__).resolve().parents[4],  # the workflow checkout
        packages=p.packages,
        fallbacks={"hvg": core.hvg_fallbacks(smk.input.hvg)},
    )
    core.write_json(record, smk.output.record)
    log.info(
        "provenance: workflow %s, %d input file(s) hashed, seeds %s",
        record["workflow"]["version"], len(record["inputs"]), record["seeds"],
    )  # fmt: skip
    # Times of every job whose output is present under results/ (not byte-compared).
    present = core.present_outputs(Path(smk.output.record).parent, skip=smk.output)
    core.write_json(core.run_times(present), smk.output.times)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
