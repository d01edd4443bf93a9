# pragma version ~=0.4.3
# A minimal USDC-like ERC-20 for tests: 6 decimals, a minter, and a blocklist (as USDC has) so a
# transfer to a blocked address reverts on chain.

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

name: public(String[32])
symbol: public(String[8])
decimals: public(uint8)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
blocked: public(HashMap[address, bool])
minter: public(address)


@deploy
def __init__():
    self.name = "USD Coin (test)"
    self.symbol = "USDC"
    self.decimals = 6
    self.minter = msg.sender


@external
def transfer(receiver: address, amount: uint256) -> bool:
    assert not self.blocked[receiver], "blocked"
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=msg.sender, receiver=receiver, value=amount)
    return True


@external
def mint(receiver: address, amount: uint256):
    assert msg.sender == self.minter
    self.totalSupply += amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=empty(address), receiver=receiver, value=amount)


@external
def block(account: address):
    assert msg.sender == self.minter
    self.blocked[account] = True
