"""The contact-centre side of AMI: what the engine learns from and asks of Asterisk
once a call needs a person.

``presence`` keeps agents' phone states (DeviceStateChange) in routing;
``tracker`` follows the agent's leg of a call (ringing, answered, hung up);
``callbacks`` places callbacks (agent first, then the customer, bridged);
``supervise`` listens, whispers and barges with ChanSpy, audited.
"""
