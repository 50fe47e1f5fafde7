// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// Call targets for the tracer tests: a store that logs and one that reverts with a reason.
contract Store {
    uint256 public value;

    event Stored(uint256 value);

    function set(uint256 newValue) external {
        value = newValue;
        emit Stored(newValue);
    }

    function fail() external pure {
        revert("nope");
    }
}

/// Calls Store: one call that succeeds, one that reverts (caught), and a revert of its own.
contract Relay {
    function run(Store store, uint256 newValue) external returns (uint256) {
        store.set(newValue);
        try store.fail() {} catch {}
        return store.value();
    }

    function boom() external pure {
        revert("boom");
    }
}
