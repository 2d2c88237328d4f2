# Load a tmeflow R export folder (results/export/r/<species>/) as a SingleCellExperiment or a
# Seurat object. The folder holds plain files (tmeflow.export.write_r_folder): raw integer counts
# (matrix.mtx.gz, genes x cells), features.tsv.gz, barcodes.tsv.gz, obs.tsv.gz (the cell
# annotations: cell types, subtypes, condition, sample, QC) and reduction_<name>.tsv.gz
# (umap, scVI).
#
#   source("workflow/scripts/R/read_tmeflow.R")
#   sce <- read_tmeflow("results/export/r/mouse")                  # SingleCellExperiment
#   so  <- read_tmeflow("results/export/r/mouse", as = "Seurat")   # Seurat
#
# Needs the Matrix package, and SingleCellExperiment or Seurat for the object asked for.

read_tmeflow_parts <- function(folder) {
  stopifnot(dir.exists(folder))
  counts <- methods::as(Matrix::readMM(file.path(folder, "matrix.mtx.gz")), "CsparseMatrix")
  features <- utils::read.delim(file.path(folder, "features.tsv.gz"), colClasses = "character")
  barcodes <- utils::read.delim(file.path(folder, "barcodes.tsv.gz"), colClasses = "character")
  obs <- utils::read.delim(file.path(folder, "obs.tsv.gz"), check.names = FALSE,
                           stringsAsFactors = FALSE)
  if (nrow(features) != nrow(counts) || nrow(barcodes) != ncol(counts) ||
      nrow(obs) != ncol(counts)) {
    stop("read_tmeflow: the files of ", folder, " disagree on the number of genes or cells")
  }
  rownames(counts) <- features$feature_id
  colnames(counts) <- barcodes$barcode
  rownames(obs) <- obs$barcode
  obs$barcode <- NULL
  reductions <- list()
  for (f in list.files(folder, pattern = "^reduction_.*\\.tsv\\.gz$")) {
    emb <- utils::read.delim(file.path(folder, f), check.names = FALSE)
    rownames(emb) <- emb$barcode
    emb$barcode <- NULL
    name <- sub("^reduction_(.*)\\.tsv\\.gz$", "\\1", f)
    reductions[[name]] <- as.matrix(emb[colnames(counts), , drop = FALSE])
  }
  list(counts = counts, features = features, obs = obs[colnames(counts), , drop = FALSE],
       reductions = reductions)
}

read_tmeflow <- function(folder, as = c("SingleCellExperiment", "Seurat")) {
  as <- match.arg(as)
  p <- read_tmeflow_parts(folder)
  if (as == "SingleCellExperiment") {
    sce <- SingleCellExperiment::SingleCellExperiment(
      assays = list(counts = p$counts),
      colData = S4Vectors::DataFrame(p$obs, check.names = FALSE),
      rowData = S4Vectors::DataFrame(symbol = p$features$symbol, row.names = p$features$feature_id)
    )
    for (name in names(p$reductions)) {
      SingleCellExperiment::reducedDim(sce, toupper(name)) <- p$reductions[[name]]
    }
    return(sce)
  }
  # Seurat wants unique feature names without underscores: the symbols, made unique
  counts <- p$counts
  rownames(counts) <- make.unique(gsub("_", "-", p$features$symbol))
  so <- SeuratObject::CreateSeuratObject(counts = counts, meta.data = p$obs)
  for (name in names(p$reductions)) {
    emb <- p$reductions[[name]]
    key <- paste0(gsub("[^A-Za-z0-9]", "", name), "_")
    colnames(emb) <- paste0(key, seq_len(ncol(emb)))
    so[[tolower(name)]] <- SeuratObject::CreateDimReducObject(embeddings = emb, key = key,
                                                               assay = "RNA")
  }
  so
}
