"""Snakemake adapter: verify and keep one downloaded input; the logic lives in tmeflow.inputs."""

from tmeflow import core, inputs


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    try:
        digest = inputs.verify_download(
            smk.input[0],
            smk.output[0],
            sha256=smk.params.sha256 or None,
            sample=smk.wildcards.sample,
            url=smk.params.url,
        )
    except core.InputError as exc:
        log.error("%s", exc)  # the message in the rule's log, not only in Snakemake's output
        raise
    log.info(
        "%s: %s -> %s (sha256 %s)", smk.wildcards.sample, smk.params.url, smk.output[0], digest
    )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
