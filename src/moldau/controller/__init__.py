"""The controller: topic creation and deletion, partition placement, leader choice."""
