"""Entry point: ``python3 -m sampleapp``."""

from sampleapp.app import main

raise SystemExit(main())
