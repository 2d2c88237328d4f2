"""Snakemake adapter: scVI integration (batch = sample); logic in tmeflow.integrate."""

from tmeflow import h5ad, integrate, runtime, tables


def main(smk) -> None:
    log = runtime.setup(smk.log[0], threads=smk.threads, numba=False)
    p = smk.params
    adata = h5ad.read_h5ad(smk.input[0], skip=("X",), layers=("counts",))
    history = integrate.train_scvi(
        adata,
        n_latent=p.n_latent,
        n_hidden=p.n_hidden,
        n_layers=p.n_layers,
        max_epochs=p.max_epochs,
        early_stopping=p.early_stopping,
        patience=p.patience,
        batch_size=p.batch_size,
        accelerator=p.accelerator,
        seed=p.seed,
        threads=p.threads,
        model_dir=smk.output.model,
    )
    log.info("scVI: %s", adata.uns["scvi"])
    tables.write_tsv(history, smk.output.history)
    h5ad.update_h5ad(adata, smk.input[0], smk.output.h5ad, elements=("obsm", "uns"))


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
