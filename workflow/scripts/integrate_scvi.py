"""Snakemake adapter: scVI integration (batch = sample); logic in tmeflow.embed."""

from tmeflow import core, embed


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads, numba=False)
    p = smk.params
    adata = core.read_h5ad(smk.input[0], skip=("X",), layers=("counts",))
    history = embed.train_scvi(
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
        progress=smk.rule,  # epochs on the terminal (stderr), not only in the log
    )
    log.info("scVI: %s", adata.uns["scvi"])
    core.write_tsv(history, smk.output.history)
    core.update_h5ad(adata, smk.input[0], smk.output.h5ad, elements=("obsm", "uns"))


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
