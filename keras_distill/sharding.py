"""Sharding a keras-hub teacher over a device mesh while the student trains
data-parallel (JAX, `keras.distribution`).

keras-hub's Gemma, Llama and Qwen backbones give a `LayoutMap` for their
weights (`Backbone.get_layout_map(mesh)`), which leaves an untied output
embedding (`token_embedding/reverse_embeddings`, the largest matrix at a
real vocabulary and the one a chunked loss multiplies by) whole on every
device. `teacher_layout_map` adds it, sharded like the input embedding.

keras-hub variable paths carry no model name (a teacher's and a student's
are both `token_embedding/embeddings`, ...), so one layout map would shard
the student too: build the teacher under a `ModelParallel` distribution with
this map and the student under one with an empty `LayoutMap` of the same
mesh (replicated), as the guide's recipe does.
"""

import keras


def teacher_layout_map(backbone_class, mesh, model_dim="model", batch_dim="batch"):
    """`backbone_class.get_layout_map(mesh)` with the output embedding sharded.

    Args:
        backbone_class: a keras-hub backbone class with `get_layout_map`,
            e.g. `keras_hub.models.LlamaBackbone`.
        mesh: a `keras.distribution.DeviceMesh` with axes `batch_dim` and
            `model_dim`.
        model_dim, batch_dim: the mesh's axis names.

    Returns:
        A `keras.distribution.LayoutMap`.
    """
    if not hasattr(backbone_class, "get_layout_map"):
        raise TypeError(
            f"{getattr(backbone_class, '__name__', backbone_class)!r} has no get_layout_map. Pass a keras-hub "
            "backbone class that gives one, e.g. keras_hub.models.LlamaBackbone, GemmaBackbone or QwenBackbone."
        )
    if not isinstance(mesh, keras.distribution.DeviceMesh):
        raise TypeError(f"`mesh` must be a keras.distribution.DeviceMesh. Received: {type(mesh).__name__}.")
    layout_map = backbone_class.get_layout_map(
        mesh, model_parallel_dim_name=model_dim, data_parallel_dim_name=batch_dim
    )
    # The transpose of `token_embedding/embeddings`' (model, batch) layout.
    layout_map["token_embedding/reverse_embeddings"] = (batch_dim, model_dim)
    return layout_map
