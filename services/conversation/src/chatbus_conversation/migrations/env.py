from chatbus_runtime.migration_env import run_env

run_env()
