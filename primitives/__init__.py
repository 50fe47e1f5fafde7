"""The chain's shared vocabulary: typed values, transactions, headers, receipts, logs."""
