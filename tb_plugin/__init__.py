"""metricreg's TensorBoard plugin: the Health tab (import name ``metricreg_tensorboard``)."""
