"""The checks of a distiller, by when they run: `models` at construction,
`arguments` at `compile`, `data` before `fit` / `evaluate`."""
