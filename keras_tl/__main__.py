import sys

from keras_tl.cli import main

sys.exit(main())
