"""`keras-tl serve`: a local server speaking TensorFlow Serving's REST API
for any exported format (`keras_tl.serving.rest`), with a page to try the
model; `keras_tl.serving.models` runs the formats as TF Serving signatures."""
