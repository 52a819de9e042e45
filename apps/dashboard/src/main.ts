console.log('ferry dashboard');
