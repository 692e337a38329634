"""Model backends behind one small Protocol per stage (see ``protocols.py``); ``registry.py``
maps a setting's name to a factory that imports heavy libraries only when called."""
