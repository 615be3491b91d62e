"""Training machinery and the training stages. Importing the package registers every stage's probe."""

from ups.training import autoencoder, operator  # noqa: F401  (registration)
