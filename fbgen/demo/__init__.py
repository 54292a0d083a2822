"""The demo world: procedurally generated captioned clips (one object moving on a plain background) and an
analytic checker that reads the attributes back from frames. The trained demo pair is built on these."""
