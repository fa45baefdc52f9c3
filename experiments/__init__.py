"""Studies that reproduce the claims of the source chapter; one module per experiment, see simsock.experiment for the contract."""
