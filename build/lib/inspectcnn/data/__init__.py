"""Data: sources (ELPV, folder, CSV), the prepare stage, and the tf.data input pipeline."""
