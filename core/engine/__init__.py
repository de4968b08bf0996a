"""The conversation engine: the pipeline every event passes, the flow language and the flow stack.

It knows no chat platform and no feature by name: features register with it (`registry`).
"""
