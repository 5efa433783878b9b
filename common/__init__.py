"""The ground floor: settings, the database engine, the error tree and the clock. Imports nothing of ours; every
other package may import it."""
