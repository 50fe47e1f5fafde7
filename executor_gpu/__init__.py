"""Transaction execution: the Executor seam, the py-evm reference, the native interpreter."""
