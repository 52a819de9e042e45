console.log('ferry cli');
