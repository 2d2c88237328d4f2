"""Snakemake adapter: read one sample's count matrix; the logic lives in tmeflow.io."""

from tmeflow import io, runtime


def main(smk) -> None:
    log = runtime.setup(smk.log[0], threads=smk.threads)
    path = smk.params.path
    if len(smk.input) == 1 and not str(smk.input[0]).startswith(str(path).rstrip("/") + "/"):
        path = smk.input[0]  # a file (possibly downloaded from a URL by Snakemake's storage)
    adata = io.ingest_sample(
        path,
        sample=smk.wildcards.sample,
        condition=smk.params.condition,
        extra=dict(smk.params.meta),
        fmt=smk.params.fmt,
    )
    log.info("%s: %d cells x %d features from %s", smk.wildcards.sample, *adata.shape, path)
    io.write_h5ad(adata, smk.output[0])


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
